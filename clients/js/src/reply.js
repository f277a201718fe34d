// One reply of Parley's protocol (docs/protocol.md), for parley-client.js:
// its frames as events and as an async iterable, repeats dropped.

// Frames numbered by `seq` (one sequence per reply, no gaps).
export const NUMBERED = new Set(['delta', 'tool_call', 'tool_result', 'sources']);

// Methods of Reply for ParleyClient only: not part of the API.
export const TAKE = Symbol('take');
export const FAIL = Symbol('fail');

/** A refusal from the server (an `error` frame), or the client giving up. */
export class ParleyError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.name = 'ParleyError';
    this.code = frame.code;
    this.frame = frame;
  }
}

export function emit(target, type, detail) {
  target.dispatchEvent(new CustomEvent(type, { detail }));
}

export function deferred() {
  let resolve, reject;
  const promise = new Promise((yes, no) => ([resolve, reject] = [yes, no]));
  promise.catch(() => {}); // a failure nobody awaits is not an unhandled rejection
  return { promise, resolve, reject };
}

/**
 * One reply: the frames of one message's answer, as events and as an async
 * iterable. `done` resolves with the `done` frame (or a `resync` frame when
 * the reply ended too long ago to replay; `null` when a person holds the
 * conversation and no reply comes), and rejects with a ParleyError when the
 * message is refused.
 */
export class Reply extends EventTarget {
  clientId;
  replyId;
  messageId = null;
  text = '';
  lastSeq; // the last numbered frame seen: a resume asks for what follows
  ended = false;
  #frames = [];
  #wake = [];
  #failure = null;
  #seen = new Set(); // notices (rule + action) and errors (code) already seen
  #done = deferred();

  constructor({ clientId = null, replyId = null, afterSeq = 0 } = {}) {
    super();
    this.clientId = clientId;
    this.replyId = replyId;
    this.lastSeq = afterSeq;
    this.done = this.#done.promise;
  }

  async *[Symbol.asyncIterator]() {
    for (let next = 0; ; ) {
      if (next < this.#frames.length) {
        yield this.#frames[next++];
      } else if (this.#failure) {
        throw this.#failure;
      } else if (this.ended) {
        return;
      } else {
        await new Promise((wake) => this.#wake.push(wake));
      }
    }
  }

  /** Take a frame of this reply; false if it repeats one already taken. */
  [TAKE](frame) {
    if (this.ended) return false;
    const { type } = frame;
    if (NUMBERED.has(type)) {
      if (frame.seq <= this.lastSeq) return false;
      this.lastSeq = frame.seq;
      if (type === 'delta') this.text += frame.text;
    } else if (type === 'notice' || type === 'error') {
      const key = type === 'notice' ? `notice ${frame.rule} ${frame.action}` : `error ${frame.code}`;
      if (this.#seen.has(key)) return false;
      this.#seen.add(key);
    } else if (type === 'accepted') {
      this.replyId = frame.reply_id;
      this.messageId = frame.message_id;
    } else if (type === 'done') {
      this.messageId = frame.message_id ?? this.messageId;
    } else if (type === 'resync') {
      this.text = frame.message.content;
    }
    this.#frames.push(frame);
    const ends = type === 'done' || type === 'resync' || (type === 'accepted' && !frame.reply_id);
    if (ends) {
      this.ended = true;
      this.#done.resolve(type === 'accepted' ? null : frame);
    }
    emit(this, type, frame);
    emit(this, 'frame', frame);
    this.#wakeUp();
    return true;
  }

  [FAIL](error) {
    if (this.ended) return;
    this.ended = true;
    this.#failure = error;
    this.#done.reject(error);
    this.#wakeUp();
  }

  #wakeUp() {
    for (const wake of this.#wake.splice(0)) wake();
  }
}

