// Renaming a conversation in place, in the sidebar: the title becomes a text box;
// Enter saves, Escape (or leaving the box) cancels. The title is plain text.
//
// Test hooks: li.conv-item .conv-rename (the button), input.conv-rename-input.

const MAX_TITLE_CHARS = 80;

/**
 * @param {HTMLLIElement} li the conversation's list item
 * @param {string} title its current title
 * @param {(title: string) => Promise<boolean>} save resolves true once stored
 * @param {() => void} done called when editing ends either way (re-render the list)
 */
export function startRename(li, title, save, done) {
  const open = li.querySelector('.conv-open');
  if (!open || li.querySelector('.conv-rename-input')) return;
  const input = document.createElement('input');
  input.type = 'text';
  input.className = 'conv-rename-input';
  input.maxLength = MAX_TITLE_CHARS;
  input.value = title;
  input.setAttribute('aria-label', 'Conversation title');
  open.hidden = true;
  li.insertBefore(input, open);
  input.focus();
  input.select();

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    input.remove();
    open.hidden = false;
    done();
  };
  input.addEventListener('keydown', async (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation(); // Escape here must not also stop a running reply
      finish();
      open.focus();
    } else if (event.key === 'Enter' && !event.isComposing) {
      event.preventDefault();
      const wanted = input.value.replace(/\s+/g, ' ').trim();
      if (!wanted || wanted === title) {
        finish();
        return;
      }
      input.disabled = true;
      const saved = await save(wanted);
      if (saved) finish();
      else {
        input.disabled = false;
        input.focus();
      }
    }
  });
  input.addEventListener('blur', () => {
    if (!input.disabled) finish();
  });
}
