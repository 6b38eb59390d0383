"""``funcgrad.numpy.linalg`` (being built: norm, inv, solve, det, slogdet, cholesky, qr, svd, eigh)."""
