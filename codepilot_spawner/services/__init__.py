"""Services the hub runs beside itself: the credential broker, the idle culler, the
preview gateway, the class page, and how they live (supervisor, ending with the hub)."""
