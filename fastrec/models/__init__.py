"""Model families, one module each; the public classes are re-exported by ``fastrec``."""
