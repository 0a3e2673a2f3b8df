"""lower: the time path of a graph read by meaning and lowered to a plan of typed C steps for streams (lowering.lower is the entry; the room loads when a session first lowers)."""
