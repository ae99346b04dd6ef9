# The public edge: 443 (HTTPS) to pylon's main port, which also serves /ws, /events and
# /shard; 4324 (HTTPS) to the shard-socket port for stock clients; 80 redirects to 443.
# WebSockets pass through an ALB as they are; the idle timeout is an hour (pylon pings
# every 20 s, SSE heartbeats every 15 s).

resource "aws_security_group" "alb" {
  name        = "${var.name}-${var.pylon_region}-alb"
  description = "pylon load balancer: HTTPS 443 and 4324, HTTP 80 (redirect)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  for_each          = toset(["80", "443", "4324"])
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  for_each                     = toset(["4321", "4324"])
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_lb" "pylon" {
  name               = "${var.name}-${var.pylon_region}"
  load_balancer_type = "application"
  security_groups    = [aws_security_group.alb.id]
  subnets            = var.public_subnet_ids
  idle_timeout       = 3600
}

# Stickiness keeps a browser on one task when desired_count is raised; it does not route
# by match id (a match lives in one task: see docs/DEPLOY.md, "Scaling out").
resource "aws_lb_target_group" "api" {
  name                 = "${var.name}-${var.pylon_region}-api"
  port                 = 4321
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 15

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  stickiness {
    type            = "lb_cookie"
    enabled         = true
    cookie_duration = 86400
  }
}

resource "aws_lb_target_group" "shard" {
  name                 = "${var.name}-${var.pylon_region}-shard"
  port                 = 4324
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 15

  # The shard port answers /health too.
  health_check {
    path                = "/health"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  stickiness {
    type            = "lb_cookie"
    enabled         = true
    cookie_duration = 86400
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.pylon.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_lb_listener" "shard" {
  load_balancer_arn = aws_lb.pylon.arn
  port              = 4324
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.shard.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.pylon.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
