"""hutch: containers for Linux.

Importing this package has no side effects and pulls in nothing but the version.
"""

__version__ = "0.1.0"

# The OCI runtime specification version that hutch-runtime implements.
OCI_VERSION = "1.2.0"
