"""rewrite: exporter patterns proved and replaced before anything else reads the graph (Loops and plain-op GRU cells become GRU nodes)."""
