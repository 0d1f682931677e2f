"""VNFs: compound elements, their runtime, and the per-flow state API they keep state with."""
