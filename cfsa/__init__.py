"""CFSA: Correlated Features Synthesis and Alignment (Xu et al., SIGIR 2020)."""
