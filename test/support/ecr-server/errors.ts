/**
 * An error the server reports to the client as an AWS JSON 1.1 error body. Operations, fault rules
 * and `onCall` hooks throw it; anything else that escapes is a bug and becomes a 500.
 */
export class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = type;
  }
}

export const invalidParameter = (message: string): ServiceError =>
  new ServiceError('InvalidParameterException', message);
