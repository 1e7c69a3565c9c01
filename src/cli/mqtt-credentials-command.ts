// `things mqtt-credentials`: the user name and password a device signs in with on the hub's
// embedded MQTT broker — a registered Thing's, or a Homie or Home Assistant device's that
// registers itself — and the topics they open; `--list` every credential issued, `--revoke` one
// (docs/mqtt.md).
import type { Command } from "commander";
import type { IssuedMqttCredentials } from "../client/index.js";
import { CliError } from "./cli-error.js";
import { clientOf, connectionHelpWith, talking } from "./client-commands.js";
import { formatTable } from "./table.js";

interface MqttCredentialsOptions {
  homie?: string;
  homeassistant?: string;
  list?: boolean;
  revoke?: string;
  json?: boolean;
}

export function registerMqttCredentialsCommand(program: Command): void {
  program
    .command("mqtt-credentials")
    .description(
      "the user name and password a device uses on the hub's embedded MQTT broker, for its own topics only; list or revoke them",
    )
    .argument("[thing]", "a registered Thing's id: its device publishes under {prefix}/things/{id}/")
    .option("--homie <device>", "a Homie 5 device id: it publishes under homie/5/{device}/")
    .option(
      "--homeassistant <node>",
      "a Home Assistant node id: it announces on homeassistant/+/{node}/+/config",
    )
    .option("--list", "every credential issued: whom it opens, issued when and by whom, last use, revoked")
    .option("--revoke <username>", "revoke a credential: its connections are closed, and it signs in no more")
    .option("--json", "the hub's answer as JSON")
    .addHelpText("after", connectionHelpWith("0 done, 1 failed (the hub refused), 2 usage"))
    .action(
      talking(async (thing: string | undefined, options: MqttCredentialsOptions, command: Command) => {
        const given = [thing, options.homie, options.homeassistant, options.list, options.revoke].filter(
          (v) => v !== undefined,
        );
        if (given.length !== 1) {
          throw new CliError(
            "give one of: a Thing id, --homie <device>, --homeassistant <node>, --list, --revoke <username>",
            2,
          );
        }
        const client = clientOf(command);
        if (options.list) {
          const credentials = await client.listMqttCredentials();
          process.stdout.write(
            options.json ? `${JSON.stringify(credentials)}\n` : credentialTable(credentials),
          );
          return;
        }
        if (options.revoke !== undefined) {
          await client.revokeMqttCredentials(options.revoke);
          process.stdout.write(
            options.json
              ? `${JSON.stringify({ revoked: options.revoke })}\n`
              : `revoked the MQTT credentials of ${options.revoke}: its connections are closed\n`,
          );
          return;
        }
        const device =
          thing !== undefined
            ? { thing }
            : options.homie !== undefined
              ? { homie: options.homie }
              : { homeassistant: options.homeassistant ?? "" };
        const credentials = await client.mqttCredentials(device);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(credentials)}\n`);
          return;
        }
        const lines = [`username: ${credentials.username}`, `password: ${credentials.password}`];
        if (credentials.publish !== undefined) lines.push(`publish: ${credentials.publish.join(" ")}`);
        if (credentials.subscribe !== undefined) lines.push(`subscribe: ${credentials.subscribe.join(" ")}`);
        process.stdout.write(`${lines.join("\n")}\n`);
      }),
    );
}

/** One line per credential: who, whom it opens, its issue and last use, and whether it is revoked. */
function credentialTable(credentials: readonly IssuedMqttCredentials[]): string {
  if (credentials.length === 0) return "no MQTT credentials issued\n";
  const rows = credentials.map((c) => [
    c.username,
    c.kind,
    c.publish.join(" "),
    c.issuedAt === undefined ? "before records" : `${c.issuedAt} by ${c.issuedBy ?? "?"}`,
    c.lastUsedAt ?? "never",
    c.revokedAt === undefined
      ? "in force"
      : `revoked ${c.revokedAt} by ${c.revokedBy ?? "?"}: ${c.revokedBecause ?? ""}`,
  ]);
  const maxWidth = process.stdout.isTTY ? process.stdout.columns : undefined;
  return formatTable(["USERNAME", "KIND", "PUBLISHES", "ISSUED", "LAST USED", "STATE"], rows, {
    maxWidth,
    uncut: [4],
  });
}
