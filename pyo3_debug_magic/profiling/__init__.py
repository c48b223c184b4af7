"""``%%native_profile``'s engines: the elfutils sampler process, naming and merging its stacks, py-spy's record, collapsed stacks to the model's ``Profile`` and the files written."""
