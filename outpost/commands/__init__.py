"""The `outpost` subcommands, one module per group; each has `add_parser(subparsers)`."""
