"""The three stages of Deep Compression on numpy arrays: prune, share weights, Huffman-code."""
