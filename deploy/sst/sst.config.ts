/// <reference path="./.sst/platform/config.d.ts" />
//
// pylon on AWS with SST v3: the same shape as deploy/terraform (one pylon task per
// region on ECS Fargate behind an ALB with 443 -> 4321 and 4324 -> 4324 and an idle
// timeout of 3600 s, Aurora Serverless v2 PostgreSQL, the admin token in Secrets
// Manager, an S3 bucket for backups). UNTESTED: written without AWS access, checked here
// only for TypeScript syntax. SST's component arguments have changed between 3.x
// releases (`loadBalancer.ports` became `loadBalancer.rules`); compare with your
// version's documentation before deploying.
//
//   cd deploy/sst
//   npx sst secret set PylonAdminToken "$(openssl rand -hex 32)" --stage eu
//   PYLON_REGION=eu PYLON_DOMAIN=eu.pylon.example.com npx sst deploy --stage eu

export default $config({
  app(input) {
    return {
      name: "pylon",
      home: "aws",
      removal: input?.stage === "production" ? "retain" : "remove",
      protect: input?.stage === "production",
    };
  },
  async run() {
    const region = process.env.PYLON_REGION ?? "eu";
    const domain = process.env.PYLON_DOMAIN ?? `${region}.pylon.example.com`;
    const regions = process.env.PYLON_REGIONS ?? "";
    const corsOrigin = process.env.PYLON_CORS_ORIGIN ?? "https://game.example.com";

    const vpc = new sst.aws.Vpc("PylonVpc", { nat: "managed" });

    // Entities, change log, sessions and saved matches. pylon's Postgres client does not
    // speak TLS today: the cluster must accept plain connections (inside the VPC).
    const db = new sst.aws.Aurora("PylonDb", {
      engine: "postgres",
      version: "16.4",
      vpc,
      scaling: { min: "0.5 ACU", max: "4 ACU" },
      transform: {
        clusterParameterGroup: (args) => {
          args.parameters = [{ name: "rds.force_ssl", value: "0" }];
        },
      },
    });

    const adminToken = new sst.Secret("PylonAdminToken");
    // ECS reads secrets from Secrets Manager at task start, so they never appear in the
    // task definition.
    const adminTokenSecret = new aws.secretsmanager.Secret("PylonAdminTokenSecret", {
      recoveryWindowInDays: 7,
    });
    new aws.secretsmanager.SecretVersion("PylonAdminTokenSecretVersion", {
      secretId: adminTokenSecret.id,
      secretString: adminToken.value,
    });
    const databaseUrlSecret = new aws.secretsmanager.Secret("PylonDatabaseUrlSecret", {
      recoveryWindowInDays: 7,
    });
    new aws.secretsmanager.SecretVersion("PylonDatabaseUrlSecretVersion", {
      secretId: databaseUrlSecret.id,
      secretString: $interpolate`postgres://${db.username}:${db.password}@${db.host}:${db.port}/${db.database}`,
    });

    // Logical backups (`pylon backup DIR`, then an upload) from an operator host or a
    // scheduled task of your own: the image has no AWS CLI.
    const backups = new sst.aws.Bucket("PylonBackups");

    const cluster = new sst.aws.Cluster("PylonCluster", { vpc });

    const service = new sst.aws.Service("Pylon", {
      cluster,
      image: { context: "../..", dockerfile: "../../Dockerfile" },
      command: ["serve"],
      cpu: "2 vCPU",
      memory: "4 GB",
      // One task: a match lives in the process that created it (docs/DEPLOY.md,
      // "Scaling out").
      scaling: { min: 1, max: 1 },
      environment: {
        PYLON_HOST: "0.0.0.0",
        PYLON_PORT: "4321",
        PYLON_REGION: region,
        ...(regions ? { PYLON_REGIONS: regions } : {}),
        PYLON_CORS_ORIGIN: corsOrigin,
        PYLON_TICK_THREADS: "2",
        PYLON_SHUTDOWN_GRACE_SECS: "30",
        PYLON_MAX_CONNS_PER_IP: "100000",
        PYLON_LOG_FORMAT: "json",
      },
      ssm: {
        PYLON_ADMIN_TOKEN: adminTokenSecret.arn,
        DATABASE_URL: databaseUrlSecret.arn,
      },
      link: [backups],
      health: {
        command: [
          "CMD",
          "bash",
          "-c",
          "exec 3<>/dev/tcp/127.0.0.1/4321 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\\.[01] 200 '",
        ],
        interval: "10 seconds",
        timeout: "3 seconds",
        retries: 3,
        startPeriod: "30 seconds",
      },
      loadBalancer: {
        domain,
        rules: [
          { listen: "80/http", redirect: "443/https" },
          { listen: "443/https", forward: "4321/http" },
          { listen: "4324/https", forward: "4324/http" },
        ],
        health: {
          "4321/http": { path: "/readyz", interval: "10 seconds", timeout: "5 seconds" },
          "4324/http": { path: "/health", interval: "10 seconds", timeout: "5 seconds" },
        },
      },
      transform: {
        loadBalancer: (args) => {
          args.idleTimeout = 3600;
        },
        target: (args) => {
          args.deregistrationDelay = 15;
          args.stickiness = { type: "lb_cookie", enabled: true, cookieDuration: 86400 };
        },
        // Stop the old task before starting the new one: it saves its matches during its
        // graceful shutdown, and the new one resumes them at start.
        service: (args) => {
          args.deploymentMinimumHealthyPercent = 0;
          args.deploymentMaximumPercent = 100;
        },
        // SIGTERM, then up to 2 s + PYLON_SHUTDOWN_GRACE_SECS of graceful shutdown: ECS's
        // default of 30 s before SIGKILL is too short.
        taskDefinition: (args) => {
          args.containerDefinitions = $output(args.containerDefinitions).apply((json) => {
            const containers = JSON.parse(json);
            for (const container of containers) {
              container.stopTimeout = 45;
              container.ulimits = [{ name: "nofile", softLimit: 1048576, hardLimit: 1048576 }];
            }
            return JSON.stringify(containers);
          });
        },
      },
    });

    return {
      url: service.url,
      backups: backups.name,
    };
  },
});
