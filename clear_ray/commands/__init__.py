"""One module per `clear-ray` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
