"""The reviewer's report page served by the GitHub App (`GET /runs/{id}`)."""
