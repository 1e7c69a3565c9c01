// The espresso machine's boiler: a first-order thermal model (heater power in, losses to the room
// out) under a PID controller, stepped in simulated seconds. Pure: no timers, no I/O.

/** The boiler's physics and its controller's gains; defaults heat 20 → 93 °C in about 40 s. */
export interface BoilerParameters {
  /** °C per second at full heater power, with no losses. */
  readonly heatRate: number;
  /** Fraction of the difference to the room lost per second. */
  readonly lossRate: number;
  readonly ambient: number;
  readonly kp: number;
  readonly ki: number;
  readonly kd: number;
  /** The largest step the model takes at once, seconds (longer advances are split). */
  readonly maxStep: number;
}

export const BOILER_DEFAULTS: BoilerParameters = {
  heatRate: 2,
  lossRate: 0.004,
  ambient: 21,
  kp: 0.5,
  ki: 0.02,
  kd: 0,
  maxStep: 0.1,
};

/** Within this of the setpoint the boiler is at temperature (ready to brew). */
export const READY_BAND = 0.5;

export class Boiler {
  temperature: number;
  setpoint: number;
  /** Heater power, 0..1, as the controller last set it. */
  power = 0;
  readonly #p: BoilerParameters;
  #integral = 0;
  #lastError: number | undefined;

  constructor(setpoint: number, parameters: Partial<BoilerParameters> = {}) {
    this.#p = { ...BOILER_DEFAULTS, ...parameters };
    this.temperature = this.#p.ambient;
    this.setpoint = setpoint;
  }

  /** The heater is on (the controller asks for more than a trickle of power). */
  get heating(): boolean {
    return this.power > 0.01;
  }

  get ready(): boolean {
    return Math.abs(this.setpoint - this.temperature) <= READY_BAND;
  }

  /** Lets `seconds` of simulated time pass. */
  advance(seconds: number): void {
    let left = seconds;
    while (left > 1e-9) {
      const dt = Math.min(left, this.#p.maxStep);
      this.#step(dt);
      left -= dt;
    }
  }

  /** Water drawn for a shot: the boiler is refilled with cold water and cools by `degrees`. */
  draw(degrees: number): void {
    this.temperature -= degrees;
  }

  #step(dt: number): void {
    const { heatRate, lossRate, ambient, kp, ki, kd } = this.#p;
    const error = this.setpoint - this.temperature;
    const derivative = this.#lastError === undefined ? 0 : (error - this.#lastError) / dt;
    this.#lastError = error;
    const unclamped = kp * error + ki * (this.#integral + error * dt) + kd * derivative;
    const power = Math.min(1, Math.max(0, unclamped));
    // Anti-windup (conditional integration): the integral grows only while the output is not saturated.
    if (power === unclamped) this.#integral += error * dt;
    this.power = power;
    this.temperature += (heatRate * power - lossRate * (this.temperature - ambient)) * dt;
  }
}
