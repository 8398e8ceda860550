"""The node agent of a joined node (see ``agent``)."""
