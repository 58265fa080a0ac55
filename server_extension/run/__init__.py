"""The Run button: the project's run command as a shared terminal of the server."""
