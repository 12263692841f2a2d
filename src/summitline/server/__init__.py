"""The server: REST API, WebSocket signaling, the web client. Never in the media path."""
