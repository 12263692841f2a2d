"""summitline: confidential, interpreted one-on-one video talks on a co-signed call plan."""

__version__ = "0.1.0"
