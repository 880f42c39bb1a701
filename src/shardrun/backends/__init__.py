"""Where array tasks run: local subprocesses, SLURM (sbatch), or submitit."""
