// PLACEHOLDER: the commands that talk to a hub over HTTP (add, get, ls, rm, search).
import type { Command } from "commander";

export function registerClientCommands(_program: Command): void {}
