"""One module per widget; each owns its CSS and the messages it posts."""
