"""`agnt5 inspect`: a local, read-only web page to look at stored sessions (README: Inspecting
sessions). The server needs the `agnt5[inspect]` extra; `import agnt5` never imports it."""
