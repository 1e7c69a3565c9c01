// The route schemas' validators, compiled once per process and shared by every hub it starts
// (replicas in one process, tests): compiling them was most of a hub's start-up CPU.
import { AjvCompiler } from "@fastify/ajv-compiler";

/**
 * What fastify calls a validator compiler with (fastify lib/validation.js): the route's part and
 * its schema. The package's types give it ajv.compile's signature instead, hence the casts.
 */
type Compile = (route: { schema: unknown }) => unknown;
type BuildCompiler = (externalSchemas: unknown, options: unknown) => Compile;

// Fastify's own builder (the one it uses when given none): one compiler per set of shared schemas
// and Ajv options, kept for the life of the process instead of one per server.
const pool = AjvCompiler() as unknown as BuildCompiler;
const validatorsOf = new WeakMap<Compile, Map<string, unknown>>();

/**
 * Fastify's `schemaController.compilersFactory.buildValidator`: the pooled compiler, remembering
 * each validator by its schema's JSON, since every server builds its route schemas anew.
 */
function buildSharedCompiler(externalSchemas: unknown, options: unknown): Compile {
  const compile = pool(externalSchemas, options);
  let validators = validatorsOf.get(compile);
  if (validators === undefined) {
    validators = new Map();
    validatorsOf.set(compile, validators);
  }
  const known = validators;
  return (route) => {
    const key = JSON.stringify(route.schema);
    let validate = known.get(key);
    if (validate === undefined) {
      validate = compile(route);
      known.set(key, validate);
    }
    return validate;
  };
}

export const sharedValidators = buildSharedCompiler as unknown as ReturnType<typeof AjvCompiler>;
