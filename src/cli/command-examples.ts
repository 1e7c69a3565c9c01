// The examples at the end of each command's --help: what a person types first. Each one is parsed
// against its command's own options by command-examples.test.ts, so that none goes stale.
import type { Command } from "commander";

const LAMP = "urn:example:espresso-machine";

/** Per command (or `credentials set` as "credentials set"), its examples, each a whole command line. */
export const commandExamples: Readonly<Record<string, readonly string[]>> = {
  serve: [
    "things serve",
    "things serve --port 0 --data /tmp/hub --no-mqtt",
    "HYPERTHINGS_ADMIN_TOKEN=… things serve --host 0.0.0.0 --auth read",
  ],
  demo: ["things demo", "things demo --port 0 --data /tmp/demo --chaos 0"],
  backup: ["things backup /backups/hub-2026-12-06", "things backup /backups/copy --data /srv/hyperthings"],
  sim: ["things sim", "things sim --scale 100 --only espresso --register http://127.0.0.1:8080 --token ht_…"],
  add: ["things add examples/things/", "things add lamp.json", "cat lamp.json | things add -"],
  get: [`things get ${LAMP}`, `things get ${LAMP} --json | jq .properties`],
  ls: ["things ls", "things ls --type saref:Sensor --json"],
  rm: [`things rm ${LAMP}`, "things rm urn:example:a urn:example:b"],
  search: [`things search '$[*].title'`, `things search '$[?@.title=="Lamp"].id' --json`],
  discover: [
    "things discover http://192.0.2.10/.well-known/wot",
    "things discover http://127.0.0.1:9000/lamp/",
  ],
  "mqtt-credentials": [
    "things mqtt-credentials --homie boiler-3",
    "things mqtt-credentials --homeassistant kitchen --json",
    "things mqtt-credentials urn:example:lamp-1",
    "things mqtt-credentials --list",
    "things mqtt-credentials --revoke homie:boiler-3",
  ],
  read: [`things read ${LAMP} setpoint`, `things read ${LAMP} temperature --var unit=F`],
  write: [
    `things write ${LAMP} setpoint 92`,
    "things write urn:example:switch-1 hostname core-sw-1     # not JSON: a string",
  ],
  invoke: [`things invoke ${LAMP} brew '{"size":"double"}'`, `things invoke ${LAMP} brew --no-wait`],
  observe: [
    `things observe ${LAMP}`,
    `things observe ${LAMP} temperature --json`,
    `things observe ${LAMP} temperature --var unit=F     # asked of the Thing, not recorded`,
  ],
  "credentials set": [
    "things credentials set urn:example:switch-1 --username ops --password -",
    "things credentials set urn:example:container-web --bearer -",
    `printf '%s\\n%s\\n' "$AUTH" "$PRIV" | things credentials set urn:example:ups-1 --auth-passphrase - --priv-passphrase -`,
  ],
  "credentials rm": ["things credentials rm urn:example:switch-1 --scheme-name basic_sc"],
  "credentials ls": ["things credentials ls urn:example:switch-1"],
  history: [
    `things history ${LAMP} --since -1h`,
    `things history ${LAMP} --affordance setpoint --kind desired,reported --json`,
  ],
  changes: [
    "things changes --since -1h --kind desired,invoked",
    "things changes --actor admin --since yesterday --oldest-first --limit 200",
    "things changes --correlation 068d88a7-5b1e-4c2a-9f3e-2d7c1a0b9e44 --oldest-first",
    "things changes --affordance setpoint --since 'yesterday 22:00' --until 06:00 --oldest-first",
  ],
  state: [`things state ${LAMP}`, `things state ${LAMP} --at '-15m'`],
  diff: [`things diff ${LAMP} --from 'yesterday 14:02'`, `things diff ${LAMP} --from -2h --to -1h --json`],
  watch: [
    "things watch --kind reported",
    `things watch --thing ${LAMP} --since -1h`,
    "things watch --correlation 068d88a7-5b1e-4c2a-9f3e-2d7c1a0b9e44",
    "things watch --json | jq -c .value",
  ],
  verify: [
    "things verify",
    "things verify --checkpoint kept.json",
    "things verify --file incident.ndjson",
    "things verify --file incident.ndjson --checkpoint kept.json --key hub.pem",
    "things verify --db copy/hyperthings.db",
  ],
  checkpoint: ["things checkpoint --out kept.json"],
  prove: ["things prove 42", "things prove 42 --json"],
  export: [
    "things export --since -1d --out incident.ndjson",
    `things export --thing ${LAMP} --out machine.ndjson.gz`,
    `things export --thing ${LAMP} --consistent-with kept.json --out incident.ndjson`,
  ],
  why: ["things why 424", "things why 424 --json"],
  rollout: ["things rollout evening-lights", "things rollout sha256:4f1c --concurrency 8 --max-failures 2"],
  rollouts: ["things rollouts", "things rollouts --status running", "things rollouts urn:uuid:… --cancel"],
  drift: ["things drift", "things drift --thing urn:example:dimmer --json"],
  lineage: ["things lineage urn:example:dimmer"],
  build: [
    "things build examples/releases/evening-lights.yaml",
    "things build examples/releases/house --dry-run",
  ],
  releases: ["things releases", "things releases --name evening-lights --json"],
  plan: ["things plan evening-lights", "things plan sha256:4f1c --select 'type = saref:Actuator'"],
  link: [`things link ${LAMP} dependsOn urn:example:switch-1`],
  unlink: [`things unlink ${LAMP} dependsOn urn:example:switch-1`],
  find: [
    "things find 'type = saref:TemperatureSensor AND state.temperature > 30'",
    `things find 'out(runsOn, *) { id = "urn:example:host-1" }' --json`,
  ],
  links: ["things links urn:example:host-1", "things links urn:example:host-1 --in --rel runsOn"],
  graph: ["things graph urn:example:host-1 --depth 2"],
};

/** The command's name as the examples are keyed: `credentials set` for a subcommand. */
function keyOf(command: Command): string {
  const parent = command.parent;
  return parent?.parent !== undefined && parent.parent !== null
    ? `${parent.name()} ${command.name()}`
    : command.name();
}

/** Adds each command's examples to the end of its --help; a command without any is left as it is. */
export function addCommandExamples(program: Command): void {
  const visit = (command: Command): void => {
    for (const sub of command.commands) {
      const examples = commandExamples[keyOf(sub)];
      if (examples !== undefined) {
        sub.addHelpText("after", `\nExamples:\n${examples.map((line) => `  ${line}`).join("\n")}\n`);
      }
      visit(sub);
    }
  };
  visit(program);
}
