"""How clients reach Parley: WebSocket, REST and Server-Sent Events."""
