#!/usr/bin/env node
// Entry point for the `validateer` bin: runs the TypeScript CLI directly (Node >= 22.18 strips types).
import '../src/cli/main.ts';
