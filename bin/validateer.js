#!/usr/bin/env -S MALLOC_TRIM_THRESHOLD_=131072 node
// Entry point for the `validateer` bin: runs the TypeScript CLI directly (Node >= 22.18 strips types).
// The shebang sets what src/node/process-env.ts names: glibc must see it before the process starts.
import '../src/cli/main.ts';
