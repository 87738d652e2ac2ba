"""RSS: the Toeplitz hash (numpy and a Z3 twin), NIC profiles, the key solver and key quality.

Import from the submodules (``explorer.rss.key_solver``, ``explorer.rss.toeplitz``, ...); this package
module stays empty so that importing one part does not load the others.
"""
