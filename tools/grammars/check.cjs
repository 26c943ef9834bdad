// Parses LogQL and TraceQL queries with Grafana's own grammars and reports every
// error node. Input on stdin: a JSON array of {"id", "dialect": "logql"|"traceql",
// "query"}. Output on stdout: a JSON array of {"id", "errors": [{"from", "to", "text"}]}
// in the same order. An unknown dialect is an error of its own, never a silent pass.
"use strict";

const parsers = {
  logql: require("@grafana/lezer-logql").parser,
  traceql: require("@grafana/lezer-traceql").parser,
};

function errorsOf(parser, query) {
  const errors = [];
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, text: query.slice(Math.max(0, node.from - 10), node.to + 10) });
      }
    },
  });
  return errors;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map(({ id, dialect, query }) => {
    const parser = parsers[dialect];
    if (!parser) return { id, errors: [{ from: 0, to: 0, text: `unknown dialect ${dialect}` }] };
    return { id, errors: errorsOf(parser, query) };
  });
  process.stdout.write(JSON.stringify(results) + "\n");
});
