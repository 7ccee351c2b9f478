"""Peers for the benchmarks: the seed design's ways of doing what cep does, timed beside ours."""
