"""The console path: a websocket consumer relaying bytes to a guest's VNC server."""
