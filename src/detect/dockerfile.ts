/**
 * Just enough Dockerfile parsing to know the stages a target can name: `FROM image [AS name]`
 * lines, with line continuations, comments and parser directives handled. Stage names are
 * case-insensitive in Docker, so they are compared lowercased.
 */
export interface DockerfileStage {
  /** The name after AS, or undefined for an unnamed stage. */
  name: string | undefined;
  base: string;
  line: number;
}

export function parseDockerfileStages(text: string): DockerfileStage[] {
  const stages: DockerfileStage[] = [];
  const lines = text.split(/\r?\n/);
  let escapeChar = '\\';
  let sawInstruction = false;
  for (let index = 0; index < lines.length; index++) {
    const startLine = index + 1;
    let line = lines[index] ?? '';
    if (!sawInstruction) {
      // Parser directives (`# escape=...`, `# syntax=...`) only count before the first comment,
      // empty line or instruction.
      const directive = /^#\s*(\w+)\s*=\s*(.*?)\s*$/.exec(line);
      const key = directive?.[1]?.toLowerCase();
      if (key === 'escape' && (directive?.[2] === '`' || directive?.[2] === '\\')) {
        escapeChar = directive[2];
        continue;
      }
      if (key === 'syntax' || key === 'check') continue;
      sawInstruction = true;
    }
    if (/^\s*(#|$)/.test(line)) continue;
    // Join continuation lines (a trailing escape character), skipping comment lines inside them.
    while (line.trimEnd().endsWith(escapeChar) && index + 1 < lines.length) {
      line = line.trimEnd().slice(0, -1);
      index++;
      while (/^\s*#/.test(lines[index] ?? '') && index + 1 < lines.length) index++;
      const next = lines[index] ?? '';
      if (!/^\s*#/.test(next)) line += ` ${next}`;
    }
    const from = /^\s*FROM\s+(.*)$/i.exec(line);
    if (!from?.[1]) continue;
    const words = from[1]
      .trim()
      .split(/\s+/)
      .filter((word) => !word.startsWith('--'));
    const base = words[0] ?? '';
    const as = words[1]?.toLowerCase() === 'as' ? words[2] : undefined;
    stages.push({ name: as?.toLowerCase(), base, line: startLine });
  }
  return stages;
}
