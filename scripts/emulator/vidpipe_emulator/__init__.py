"""vidpipe emulated-AWS harness: moto + cargo lambda watch, provisioned from template.yaml.

One process that:
  1. starts a moto server in-process with Step Functions execution switched on;
  2. forwards every Lambda invoke moto makes (API invoke, Step Functions tasks, S3 notifications,
     SQS event source mappings) to `cargo lambda watch`'s Invoke API;
  3. provisions the stack from the SAM template (expanded offline with aws-sam-translator), creating
     each resource through its own service API so every property that matters is kept;
  4. starts `cargo lambda watch` with the functions' resolved environment;
  5. prints one JSON line {"ready": true, ...} on stdout, then runs until SIGTERM/SIGINT, stdin EOF
     or the death of its parent, and stops everything it started.

Logs go to stderr. See README.md beside this package. The modules, by concern:
  common        constants, logging, the startup error, waiting for ports
  template      the SAM template: YAML with CloudFormation tags, local paths, the SAM transform
  resolver      Ref/GetAtt/Sub/... and Conditions over the expanded template
  provision     one moto resource per template resource, in dependency order
  moto_patches  what moto is taught: Lambda forwarding, ECS tasks as processes, S3 event fields,
                SQS event source mappings, serialized DynamoDB
  gateway       the HTTP API: one function per route, payload 2.0
  websocket     the WebSocket API ($connect, $disconnect, $default) and its @connections API
  streams       DynamoDB stream mappings: filter, batch, invoke with the DynamodbEvent shape
  functions     the cargo side: workspace bins, --warm builds, `cargo lambda watch`
  cli           flags, startup in order, the ready line, shutdown
"""
