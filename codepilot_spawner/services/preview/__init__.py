"""Previews on origins of their own: the gateway service and the pure pieces it uses."""
