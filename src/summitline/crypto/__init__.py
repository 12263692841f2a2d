"""Keys, signatures and the keystore: everything that touches private key material."""
