"""`anl`: the local tooling (command line, local server, demo) over the Lambda handlers; not in the layer."""
