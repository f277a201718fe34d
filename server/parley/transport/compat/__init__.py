"""APIs other clients already speak, in front of the same chat service.

``openai_api`` serves OpenAI's ``/v1/models`` and ``/v1/chat/completions``;
``anthropic_api`` serves Anthropic's ``/v1/messages``. Both translate the
vendor's request into a :class:`~parley.transport.compat.turn.Transcript`, run
it as an ordinary Parley turn (``turn``), and translate the reply's frames
back into the vendor's JSON or event stream. See docs/clients.md.
"""
