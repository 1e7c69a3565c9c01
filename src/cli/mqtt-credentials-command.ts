// `things mqtt-credentials`: the user name and password a device signs in with on the hub's
// embedded MQTT broker — a registered Thing's, or a Homie or Home Assistant device's that
// registers itself — and the topics they open (docs/mqtt.md).
import type { Command } from "commander";
import { CliError } from "./cli-error.js";
import { clientOf, connectionHelpWith, talking } from "./client-commands.js";

interface MqttCredentialsOptions {
  homie?: string;
  homeassistant?: string;
  json?: boolean;
}

export function registerMqttCredentialsCommand(program: Command): void {
  program
    .command("mqtt-credentials")
    .description(
      "the user name and password a device uses on the hub's embedded MQTT broker, for its own topics only",
    )
    .argument("[thing]", "a registered Thing's id: its device publishes under {prefix}/things/{id}/")
    .option("--homie <device>", "a Homie 5 device id: it publishes under homie/5/{device}/")
    .option(
      "--homeassistant <node>",
      "a Home Assistant node id: it announces on homeassistant/+/{node}/+/config",
    )
    .option("--json", "the hub's answer as JSON")
    .addHelpText("after", connectionHelpWith("0 done, 1 failed (the hub refused), 2 usage"))
    .action(
      talking(async (thing: string | undefined, options: MqttCredentialsOptions, command: Command) => {
        const given = [thing, options.homie, options.homeassistant].filter((v) => v !== undefined);
        if (given.length !== 1) {
          throw new CliError("give one of: a Thing id, --homie <device>, --homeassistant <node>", 2);
        }
        const device =
          thing !== undefined
            ? { thing }
            : options.homie !== undefined
              ? { homie: options.homie }
              : { homeassistant: options.homeassistant ?? "" };
        const credentials = await clientOf(command).mqttCredentials(device);
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
