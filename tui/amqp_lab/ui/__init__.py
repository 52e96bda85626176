"""The Textual front end: it renders snapshots and never touches a message."""
