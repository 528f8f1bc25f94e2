"""The ddb node process (see DESIGN.md)."""
