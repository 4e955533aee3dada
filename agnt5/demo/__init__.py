"""The `agnt5 demo` main job: runs offline on the embedded store."""
