"""Side-by-side benchmarks: ours vs a baseline, same inputs, same run (`make bench`)."""
