/**
 * The one place that asks a person anything. The API takes a Prompter; the CLI passes this one
 * only when stdin and stdout are terminals, and tests pass their own. @inquirer/prompts is loaded
 * on first use, so commands that never ask never pay for it.
 */
export interface Prompter {
  input(question: {
    message: string;
    default?: string;
    validate?: (value: string) => true | string;
  }): Promise<string>;
  select(question: {
    message: string;
    choices: { name: string; value: string }[];
    default?: string;
  }): Promise<string>;
}

export const terminalPrompter: Prompter = {
  async input(question) {
    const { input } = await import('@inquirer/prompts');
    return input(question);
  },
  async select(question) {
    const { select } = await import('@inquirer/prompts');
    return select(question);
  },
};
