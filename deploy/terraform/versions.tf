# pylon on AWS: a reference configuration, UNTESTED (written on a machine without
# network access to AWS or the Terraform registry; `terraform fmt` is the only check it
# has passed). Read it, adapt it, and run `terraform plan` before trusting any of it.
#
# Shape: one pylon task per region on ECS Fargate behind an Application Load Balancer
# (443 to the API port, 4324 to the shard-socket port, idle timeout 3600 s), Aurora
# Serverless v2 PostgreSQL for entities, sessions and saved matches, the admin token and
# the database URL in Secrets Manager, an S3 bucket for logical backups.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = {
      app    = var.name
      region = var.pylon_region
    }
  }
}
