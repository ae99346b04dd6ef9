# The admin token and the database URL live in Secrets Manager; the task receives them as
# environment variables (PYLON_ADMIN_TOKEN, DATABASE_URL), never in the task definition.

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "aws_secretsmanager_secret" "admin_token" {
  name                    = "${var.name}-${var.pylon_region}/admin-token"
  description             = "PYLON_ADMIN_TOKEN of pylon region ${var.pylon_region}"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "admin_token" {
  secret_id     = aws_secretsmanager_secret.admin_token.id
  secret_string = random_password.admin_token.result
}

resource "aws_secretsmanager_secret" "database_url" {
  name                    = "${var.name}-${var.pylon_region}/database-url"
  description             = "DATABASE_URL of pylon region ${var.pylon_region}"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id     = aws_secretsmanager_secret.database_url.id
  secret_string = "postgres://pylon:${random_password.db.result}@${aws_rds_cluster.pylon.endpoint}:5432/pylon"
}
