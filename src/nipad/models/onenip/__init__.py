"""OneNIP and its prompt-free variant UniAD: network, objective, detector and its settings."""
