"""Plumbing every part uses: settings, files, checkpoints, runtime, memory, tracking, schedules."""
