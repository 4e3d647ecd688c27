"""One module per `hil` command group; each exposes `register(app)`."""
