"""Resource kinds and their YAML decoding (the first stage of the data flow)."""
