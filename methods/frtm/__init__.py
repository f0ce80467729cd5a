"""FRTM: the target model D trained online (Gauss-Newton/CG), the refinement network R, the tracker and the training."""
