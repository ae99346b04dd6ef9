# One pylon task per region on Fargate. Deployments stop the old task before starting
# the new one (minimum 0 %, maximum 100 %): the old task saves its matches during its
# graceful shutdown and the new one resumes them at start.

resource "aws_security_group" "tasks" {
  name        = "${var.name}-${var.pylon_region}-tasks"
  description = "pylon tasks: 4321 and 4324 from the load balancer only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  for_each                     = toset(["4321", "4324"])
  security_group_id            = aws_security_group.tasks.id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_egress_rule" "tasks" {
  security_group_id = aws_security_group.tasks.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_cloudwatch_log_group" "pylon" {
  name              = "/ecs/${var.name}-${var.pylon_region}"
  retention_in_days = 30
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Execution role: pull the image, write logs, read the two secrets.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-${var.pylon_region}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "secrets" {
  statement {
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      aws_secretsmanager_secret.admin_token.arn,
      aws_secretsmanager_secret.database_url.arn,
    ]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.secrets.json
}

# Task role: pylon itself calls no AWS API; the role exists for a backup task of your own.
resource "aws_iam_role" "task" {
  name               = "${var.name}-${var.pylon_region}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

data "aws_iam_policy_document" "backups" {
  statement {
    actions   = ["s3:PutObject", "s3:GetObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn, "${aws_s3_bucket.backups.arn}/*"]
  }
}

resource "aws_iam_role_policy" "task_backups" {
  name   = "backups"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.backups.json
}

resource "aws_ecs_cluster" "pylon" {
  name = "${var.name}-${var.pylon_region}"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

locals {
  # Health without curl, as in the Dockerfile's HEALTHCHECK.
  health_command = "exec 3<>/dev/tcp/127.0.0.1/4321 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\\.[01] 200 '"

  environment = [
    for k, v in {
      PYLON_HOST                = "0.0.0.0"
      PYLON_PORT                = "4321"
      PYLON_REGION              = var.pylon_region
      PYLON_REGIONS             = var.pylon_regions
      PYLON_CORS_ORIGIN         = var.cors_origin
      PYLON_TICK_THREADS        = tostring(max(1, floor(var.task_cpu / 1024)))
      PYLON_SHUTDOWN_GRACE_SECS = "30"
      PYLON_LOG                 = "info"
      PYLON_LOG_FORMAT          = "json"
      # Every client arrives from the load balancer's addresses, which change: raise the
      # per-address socket cap to what the task should hold.
      PYLON_MAX_CONNS_PER_IP = "100000"
    } : { name = k, value = v } if v != ""
  ]
}

resource "aws_ecs_task_definition" "pylon" {
  family                   = "${var.name}-${var.pylon_region}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name      = "pylon"
      image     = var.image
      essential = true
      command   = ["serve"]
      portMappings = [
        { containerPort = 4321, protocol = "tcp" },
        { containerPort = 4322, protocol = "tcp" },
        { containerPort = 4323, protocol = "tcp" },
        { containerPort = 4324, protocol = "tcp" },
      ]
      environment = local.environment
      secrets = [
        { name = "PYLON_ADMIN_TOKEN", valueFrom = aws_secretsmanager_secret.admin_token.arn },
        { name = "DATABASE_URL", valueFrom = aws_secretsmanager_secret.database_url.arn },
      ]
      # SIGTERM, then up to 2 s + PYLON_SHUTDOWN_GRACE_SECS of graceful shutdown.
      stopTimeout = 45
      ulimits = [
        { name = "nofile", softLimit = 1048576, hardLimit = 1048576 },
      ]
      healthCheck = {
        command     = ["CMD", "bash", "-c", local.health_command]
        interval    = 10
        timeout     = 3
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.pylon.name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = "pylon"
        }
      }
    }
  ])
}

resource "aws_ecs_service" "pylon" {
  name                               = "${var.name}-${var.pylon_region}"
  cluster                            = aws_ecs_cluster.pylon.id
  task_definition                    = aws_ecs_task_definition.pylon.arn
  launch_type                        = "FARGATE"
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  health_check_grace_period_seconds  = 60

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "pylon"
    container_port   = 4321
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.shard.arn
    container_name   = "pylon"
    container_port   = 4324
  }

  depends_on = [aws_lb_listener.https, aws_lb_listener.shard]
}
