"""The version of the bwrapd client: the project's version (pom.xml)."""

__version__ = "0.1.0"
